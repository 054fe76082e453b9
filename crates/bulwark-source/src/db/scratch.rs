//! Throwaway PostgreSQL clusters for restore tests: `initdb --data-checksums` in a temporary
//! directory, started with `pg_ctl` on a private Unix socket only (no TCP listener), without
//! WAL archiving or fsync, and removed afterwards. On failure the server's log is kept (the data
//! directory never is).
//!
//! `initdb`, `pg_ctl` and `postgres` refuse to run as root. Run as root, the cluster runs as an
//! unprivileged account: `BULWARK_SCRATCH_USER`, else `postgres`; it owns the directory.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ::postgres::Client;

use super::postgres::{PgTools, connect};
use super::{DbError, DbResult, tail_lines};

/// The scratch cluster's superuser.
pub const SUPERUSER: &str = "postgres";
const PORT: u16 = 5432;

/// An account to run the cluster's programs as.
#[derive(Clone, Debug)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Whom to run initdb/postgres as: `None` means this process's own user (not root).
pub fn scratch_user() -> DbResult<Option<RunAs>> {
    run_as("postgres", "initdb and postgres")
}

/// Whom a scratch server's `programs` run as when this process is root: `BULWARK_SCRATCH_USER`,
/// else `default_account`; `None` when this process is not root (it runs them itself).
pub fn run_as(default_account: &str, programs: &str) -> DbResult<Option<RunAs>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let configured = std::env::var("BULWARK_SCRATCH_USER")
        .ok()
        .filter(|s| !s.is_empty());
    let name = configured
        .clone()
        .unwrap_or_else(|| default_account.to_string());
    match lookup_user(&name) {
        Some(u) if u.uid != 0 => Ok(Some(u)),
        Some(_) => Err(DbError(format!(
            "BULWARK_SCRATCH_USER={name} is root: {programs} must not run as root; \
             name an unprivileged account"
        ))),
        None => Err(DbError(match configured {
            Some(_) => format!(
                "BULWARK_SCRATCH_USER names '{name}', but there is no such user on this host"
            ),
            None => format!(
                "{programs} must not run as root, and there is no unprivileged account to run \
                 the scratch server as (no '{name}' user): create one (e.g. `useradd --system {name}`) \
                 or set BULWARK_SCRATCH_USER to an existing unprivileged account"
            ),
        })),
    }
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam takes a NUL-terminated string and returns a pointer to static storage or
    // null; we copy the fields out before any other call could overwrite it.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        if pw.is_null() {
            return None;
        }
        Some(RunAs {
            name: name.to_string(),
            uid: (*pw).pw_uid,
            gid: (*pw).pw_gid,
        })
    }
}

/// A running throwaway cluster. Dropping it stops the server and removes the directory (keeping
/// the log when [`ScratchCluster::keep_log`] was called).
pub struct ScratchCluster {
    root: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    tools: PgTools,
    run_as: Option<RunAs>,
    running: bool,
    keep_log: bool,
    major: u32,
}

impl ScratchCluster {
    /// initdb and start a cluster with the programs of `tools`, in the system's temporary
    /// directory.
    pub fn start(tools: &PgTools) -> DbResult<ScratchCluster> {
        ScratchCluster::start_in(tools, None)
    }

    /// initdb and start a cluster in a new directory below `base` (default: the system's
    /// temporary directory).
    pub fn start_in(tools: &PgTools, base: Option<&Path>) -> DbResult<ScratchCluster> {
        let initdb = tools.program("initdb")?;
        let pg_ctl = tools.program("pg_ctl")?;
        tools.program("postgres")?;
        let (_, major) = tools.version("postgres")?;
        let run_as = scratch_user()?;
        let base = base.map_or_else(scratch_base, Path::to_path_buf);
        let root = tempfile::Builder::new()
            .prefix("bulwark-scratch-")
            .tempdir_in(&base)
            .map_err(|e| {
                DbError(format!(
                    "cannot create a scratch directory in {}: {e}",
                    base.display()
                ))
            })?
            .keep();
        let mut cluster = ScratchCluster {
            data: root.join("data"),
            socket: root.join("socket"),
            log: root.join("postgres.log"),
            root,
            tools: tools.clone(),
            run_as,
            running: false,
            keep_log: false,
            major,
        };
        cluster
            .init(&initdb, &pg_ctl)
            .inspect_err(|_| cluster.keep_log())?;
        Ok(cluster)
    }

    fn init(&mut self, initdb: &Path, pg_ctl: &Path) -> DbResult<()> {
        let io = |what: &str, e: std::io::Error| {
            DbError(format!("{what} in {}: {e}", self.root.display()))
        };
        fs::create_dir(&self.socket).map_err(|e| io("cannot create the socket directory", e))?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| io("cannot create the log", e))?;
        if let Some(u) = &self.run_as {
            for p in [&self.root, &self.socket, &self.log] {
                std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).map_err(|e| {
                    DbError(format!(
                        "cannot give {} to user {}: {e}",
                        p.display(),
                        u.name
                    ))
                })?;
            }
        }
        let out = self
            .command(initdb)
            .arg("--pgdata")
            .arg(&self.data)
            .args([
                "--username",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .args(["--data-checksums", "--no-sync"])
            .output()
            .map_err(|e| DbError(format!("cannot run {}: {e}", initdb.display())))?;
        self.append_log(&out.stdout);
        self.append_log(&out.stderr);
        if !out.status.success() {
            return Err(DbError(format!(
                "initdb failed ({}): {} (log: {})",
                out.status,
                tail_lines(&String::from_utf8_lossy(&out.stderr), 3),
                self.log.display()
            )));
        }
        let settings = format!(
            "\n# bulwark scratch cluster: thrown away after the restore test\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{}'\n\
             port = {PORT}\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             archive_mode = off\n\
             wal_level = minimal\n\
             max_wal_senders = 0\n\
             autovacuum = off\n\
             max_connections = 20\n\
             logging_collector = off\n",
            self.socket.display()
        );
        let conf = self.data.join("postgresql.conf");
        let mut text =
            fs::read_to_string(&conf).map_err(|e| io("cannot read postgresql.conf", e))?;
        text += &settings;
        fs::write(&conf, text).map_err(|e| io("cannot write postgresql.conf", e))?;
        let out = self
            .command(pg_ctl)
            .arg("--pgdata")
            .arg(&self.data)
            .arg("--log")
            .arg(&self.log)
            .args(["--wait", "--timeout=120", "--silent", "start"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| DbError(format!("cannot run {}: {e}", pg_ctl.display())))?;
        if !out.status.success() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            return Err(DbError(format!(
                "the scratch cluster did not start ({}): {} {} (log: {})",
                out.status,
                tail_lines(&String::from_utf8_lossy(&out.stderr), 2),
                tail_lines(&log, 3),
                self.log.display()
            )));
        }
        self.running = true;
        Ok(())
    }

    /// A command for a cluster program, run as the scratch user.
    fn command(&self, program: &Path) -> Command {
        server_command(program, &self.root, self.run_as.as_ref(), PG_REDIRECTING)
    }

    fn append_log(&self, bytes: &[u8]) {
        append_to_log(&self.log, bytes);
    }

    /// A libpq connection string for database `db` as the superuser.
    pub fn dsn(&self, db: &str) -> String {
        format!(
            "host={} port={PORT} user={SUPERUSER} dbname={db}",
            self.socket.display()
        )
    }

    pub fn connect(&self, db: &str) -> DbResult<Client> {
        connect(&self.dsn(db))
    }

    pub fn major(&self) -> u32 {
        self.major
    }

    pub fn tools(&self) -> &PgTools {
        &self.tools
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Keep the server's log (and any other log files in the directory) when dropped.
    pub fn keep_log(&mut self) {
        self.keep_log = true;
    }

    /// Stop the server (immediately: nothing in it is worth a checkpoint).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        if let Ok(pg_ctl) = self.tools.program("pg_ctl") {
            let r = self
                .command(&pg_ctl)
                .arg("--pgdata")
                .arg(&self.data)
                .args(["--mode=immediate", "--wait", "--silent", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !matches!(r, Ok(s) if s.success()) {
                tracing::warn!(
                    "could not stop the scratch cluster in {}",
                    self.data.display()
                );
            }
        }
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        self.stop();
        if self.keep_log {
            let _ = fs::remove_dir_all(&self.data);
            let _ = fs::remove_dir_all(&self.socket);
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// The libpq variables that would point a PostgreSQL server program elsewhere.
pub(crate) const PG_REDIRECTING: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGOPTIONS",
];

/// A command for a scratch server's `program`: in `root`, which is also its `HOME`, as `run_as`,
/// with stdin closed, and without Bulwark's variables ([`crate::child`]) or the client variables
/// `redirecting` that could point it at another server.
pub(crate) fn server_command(
    program: &Path,
    root: &Path,
    run_as: Option<&RunAs>,
    redirecting: &[&str],
) -> Command {
    let mut c = crate::child::command(program);
    c.current_dir(root).stdin(Stdio::null()).env("HOME", root);
    for v in redirecting {
        c.env_remove(v);
    }
    if let Some(u) = run_as {
        // std drops supplementary groups (setgroups(0)) when changing uid as root.
        c.uid(u.uid)
            .gid(u.gid)
            .env("USER", &u.name)
            .env("LOGNAME", &u.name);
    }
    c
}

/// Append `bytes` to a scratch server's log, if it can be opened (a log is best effort).
pub(crate) fn append_to_log(log: &Path, bytes: &[u8]) {
    use std::io::Write;
    if let Ok(mut f) = OpenOptions::new().append(true).open(log) {
        let _ = f.write_all(bytes);
    }
}

/// Where scratch directories go: the temporary directory, unless its path is too long for a Unix
/// socket path (about 107 bytes), then /tmp.
pub(crate) fn scratch_base() -> PathBuf {
    let t = std::env::temp_dir();
    if t.as_os_str().len() > 60 {
        PathBuf::from("/tmp")
    } else {
        t
    }
}
