//! Throwaway MariaDB servers for restore tests: `mariadb-install-db` into a temporary data
//! directory, then `mariadbd` on a private Unix socket only (`--skip-networking`), without a
//! binary log, without durability (no log flush at commit, no doublewrite), with the event
//! scheduler off (restored events must not change the data before it is checked), with its own
//! temporary directory (a starting server deletes the temporary files it finds in its tmpdir,
//! which in a shared /tmp would be other servers' live temporary tables), and removed
//! afterwards. On failure the server's log is kept (the data directory never is).
//!
//! `mariadbd` must not run as root. Run as root, the server runs as an unprivileged account:
//! `BULWARK_SCRATCH_USER`, else `mysql` (which Debian's mariadb-server creates); it owns the
//! directory. Its `root` account has no password and is reachable only through the socket, in a
//! directory only that account and root can enter.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ::mysql::Conn;

use super::{INSTALL_DB, MariadbDsn, MariadbTools, SERVER, connect, version_num};
use crate::db::scratch::{RunAs, append_to_log, run_as, scratch_base, server_command};
use crate::db::{DbError, DbResult, tail_lines};

/// The scratch server's superuser.
pub const SUPERUSER: &str = "root";
const START_LIMIT: Duration = Duration::from_secs(120);

/// A running throwaway server. Dropping it stops the server and removes the directory (keeping
/// the log when [`ScratchServer::keep_log`] was called).
pub struct ScratchServer {
    root: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    run_as: Option<RunAs>,
    keep_log: bool,
    version: String,
    version_num: u32,
}

impl ScratchServer {
    /// Initialise and start a server with the programs of `tools`, with the source's
    /// `lower_case_table_names` (a dump's table names resolve as they did there).
    pub fn start(tools: &MariadbTools, lower_case_table_names: u32) -> DbResult<ScratchServer> {
        let install = tools.program(INSTALL_DB)?;
        let server = tools.program(SERVER)?;
        let version = tools.version(SERVER)?;
        let num = version_num(&version).ok_or_else(|| {
            DbError(format!(
                "cannot tell the version of {}: '{version}'",
                server.display()
            ))
        })?;
        let run_as = run_as("mysql", "mariadb-install-db and mariadbd")?;
        let base = scratch_base();
        let root = tempfile::Builder::new()
            .prefix("bulwark-mariadb-")
            .tempdir_in(&base)
            .map_err(|e| {
                DbError(format!(
                    "cannot create a scratch directory in {}: {e}",
                    base.display()
                ))
            })?
            .keep();
        let mut s = ScratchServer {
            data: root.join("data"),
            socket: root.join("run").join("mariadbd.sock"),
            log: root.join("mariadbd.log"),
            root,
            child: None,
            run_as,
            keep_log: false,
            version,
            version_num: num,
        };
        s.init(&install, &server, lower_case_table_names)
            .inspect_err(|_| s.keep_log())?;
        Ok(s)
    }

    fn init(&mut self, install: &Path, server: &Path, lctn: u32) -> DbResult<()> {
        let io = |what: &str, e: std::io::Error| {
            DbError(format!("{what} in {}: {e}", self.root.display()))
        };
        let run = self.root.join("run");
        fs::create_dir(&run).map_err(|e| io("cannot create the socket directory", e))?;
        // Its own temporary directory: a starting server deletes the temporary files it finds
        // there, which in a shared /tmp would be other servers' live temporary tables.
        let tmp = self.root.join("tmp");
        fs::create_dir(&tmp).map_err(|e| io("cannot create the temporary directory", e))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| io("cannot create the log", e))?;
        if let Some(u) = &self.run_as {
            for p in [&self.root, &run, &tmp, &self.log] {
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
            .command(install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ])
            .output()
            .map_err(|e| DbError(format!("cannot run {}: {e}", install.display())))?;
        self.append_log(&out.stdout);
        self.append_log(&out.stderr);
        if !out.status.success() {
            return Err(DbError(format!(
                "mariadb-install-db failed ({}): {} (log: {})",
                out.status,
                tail_lines(&String::from_utf8_lossy(&out.stderr), 3),
                self.log.display()
            )));
        }
        // The superuser has no password: only the scratch account (and root) may reach the socket.
        for d in [&self.root, &run] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o700))
                .map_err(|e| io("cannot restrict the directory", e))?;
        }
        let err_log = log.try_clone().map_err(|e| io("cannot open the log", e))?;
        let child = self
            .command(server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data.display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--pid-file={}", run.join("mariadbd.pid").display()))
            .arg(format!("--lower-case-table-names={lctn}"))
            .args([
                "--skip-networking",
                "--skip-log-bin",
                "--event-scheduler=OFF",
                "--skip-slave-start",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=128M",
                "--max-allowed-packet=1G",
                "--character-set-server=utf8mb4",
                "--skip-name-resolve",
                "--max-connections=20",
            ])
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .spawn()
            .map_err(|e| DbError(format!("cannot run {}: {e}", server.display())))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let log = fs::read_to_string(&self.log).unwrap_or_default();
                return Err(DbError(format!(
                    "the scratch server exited ({status}) while starting: {} (log: {})",
                    tail_lines(&log, 3),
                    self.log.display()
                )));
            }
            if self.socket.exists() && self.connect("").is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                return Err(DbError(format!(
                    "the scratch server did not accept connections within {} s (log: {})",
                    START_LIMIT.as_secs(),
                    self.log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A command for a server program, run as the scratch user.
    fn command(&self, program: &Path) -> Command {
        server_command(
            program,
            &self.root,
            self.run_as.as_ref(),
            &[
                "MYSQL_HOME",
                "MYSQL_PWD",
                "MYSQL_HOST",
                "MYSQL_TCP_PORT",
                "MYSQL_UNIX_PORT",
            ],
        )
    }

    fn append_log(&self, bytes: &[u8]) {
        append_to_log(&self.log, bytes);
    }

    /// The superuser's connection to database `db` (empty: none).
    pub fn dsn(&self, db: &str) -> MariadbDsn {
        MariadbDsn::unix(&self.socket, SUPERUSER, None, db)
    }

    pub fn connect(&self, db: &str) -> DbResult<Conn> {
        connect(&self.dsn(db))
    }

    /// `mariadbd --version`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn version_num(&self) -> u32 {
        self.version_num
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

    /// Stop the server at once: nothing in it is worth a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        self.stop();
        if self.keep_log {
            let _ = fs::remove_dir_all(&self.data);
            let _ = fs::remove_dir_all(self.root.join("run"));
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}
