//! Real MariaDB servers for the tests: `mariadb-install-db` into a temporary directory and
//! `mariadbd` on a free loopback port and a private socket, with a binary log as production
//! servers have, run as the `mysql` account when the tests run as root (or
//! `BULWARK_SCRATCH_USER`). Stopped and removed on drop. Repositories in temporary directories.
//!
//! Without the MariaDB programs the tests are skipped with a message, unless
//! `BULWARK_REQUIRE_MARIADB=1` makes that a failure.

#![allow(dead_code)]

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_ops::database::{DbBackupOptions, DbSource};
use bulwark_repo::{Credential, Repository, Settings, StoreBackend};
use bulwark_source::db::mariadb::driver::prelude::Queryable;
use bulwark_source::db::mariadb::driver::{Conn, OptsBuilder};
use bulwark_source::db::mariadb::{
    CLIENT, DUMP, INSTALL_DB, MariadbBackupOptions, MariadbTools, SERVER,
};
use tempfile::TempDir;

/// Whether the long-running variants were asked for.
pub fn thorough() -> bool {
    std::env::var("BULWARK_THOROUGH").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `quick` normally, `full` under BULWARK_THOROUGH=1.
pub fn scale(quick: u32, full: u32) -> u32 {
    if thorough() { full } else { quick }
}

pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the MariaDB server and client programs are installed; says so when skipping.
pub fn mariadb_available() -> bool {
    let tools = MariadbTools::locate();
    let missing: Vec<&str> = [SERVER, INSTALL_DB, DUMP, CLIENT]
        .iter()
        .filter(|p| !tools.has(p))
        .map(|p| p[0])
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("BULWARK_REQUIRE_MARIADB").is_ok_and(|v| v == "1") {
        panic!(
            "MariaDB programs not found ({}) and BULWARK_REQUIRE_MARIADB=1",
            missing.join(", ")
        );
    }
    eprintln!(
        "SKIPPED: MariaDB programs not found ({}): install mariadb-server and mariadb-client, or set \
         BULWARK_MARIADB_BINDIR",
        missing.join(", ")
    );
    false
}

/// (uid, gid) of the account the server runs as: BULWARK_SCRATCH_USER or `mysql` when root.
fn run_as() -> Option<(u32, u32)> {
    if !running_as_root() {
        return None;
    }
    let name = std::env::var("BULWARK_SCRATCH_USER").unwrap_or_else(|_| "mysql".into());
    let c = std::ffi::CString::new(name.clone()).unwrap();
    // SAFETY: getpwnam returns null or a pointer to static storage, read at once.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    assert!(
        !pw.is_null(),
        "tests run as root need an unprivileged '{name}' account for MariaDB (useradd --system {name})"
    );
    // SAFETY: pw is non-null.
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A source server: TCP on 127.0.0.1 and a socket, binary log on, `root` without a password.
pub struct MariaServer {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    run_as: Option<(u32, u32)>,
}

impl MariaServer {
    pub fn start() -> MariaServer {
        let tools = MariadbTools::locate();
        let run_as = run_as();
        let dir = tempfile::Builder::new()
            .prefix("bulwark-mariatest-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        fs::create_dir(dir.join("run")).unwrap();
        fs::create_dir(dir.join("binlog")).unwrap();
        // Never the shared /tmp: a starting server deletes the temporary files it finds there.
        fs::create_dir(dir.join("tmp")).unwrap();
        if let Some((uid, gid)) = run_as {
            for d in ["", "run", "binlog", "tmp"] {
                std::os::unix::fs::chown(dir.join(d), Some(uid), Some(gid)).unwrap();
            }
        }
        let mut server = MariaServer {
            dir,
            port: 0,
            child: None,
            run_as,
        };
        let out = server
            .cmd(&tools.program(INSTALL_DB).unwrap())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", server.dir.join("data").display()))
            .arg(format!("--tmpdir={}", server.dir.join("tmp").display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A port can be taken between choosing and binding it: try a few.
        for _ in 0..5 {
            server.port = free_port();
            let log = fs::File::create(server.dir.join("server.log")).unwrap();
            if let Some((uid, gid)) = run_as {
                std::os::unix::fs::chown(server.dir.join("server.log"), Some(uid), Some(gid))
                    .unwrap();
            }
            let child = server
                .cmd(&tools.program(SERVER).unwrap())
                .arg("--no-defaults")
                .arg(format!("--datadir={}", server.dir.join("data").display()))
                .arg(format!("--socket={}", server.socket().display()))
                .arg(format!("--tmpdir={}", server.dir.join("tmp").display()))
                .arg(format!("--port={}", server.port))
                .arg(format!(
                    "--log-bin={}",
                    server.dir.join("binlog/mysql-bin").display()
                ))
                .arg(format!(
                    "--pid-file={}",
                    server.dir.join("run/pid").display()
                ))
                .args([
                    "--bind-address=127.0.0.1",
                    "--server-id=1",
                    "--innodb-flush-log-at-trx-commit=2",
                    "--skip-name-resolve",
                    "--event-scheduler=ON",
                    "--max-connections=60",
                    "--character-set-server=utf8mb4",
                ])
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap();
            server.child = Some(child);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(60) {
                if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                    eprintln!("mariadbd exited ({status}); retrying on another port");
                    server.child = None;
                    break;
                }
                if server.try_connect("").is_ok() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "mariadbd did not start: {}",
            fs::read_to_string(server.dir.join("server.log")).unwrap_or_default()
        );
    }

    fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.dir)
            .stdin(Stdio::null())
            .env("HOME", &self.dir);
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/mariadbd.sock")
    }

    /// A DSN for database `db` over TCP as root.
    pub fn dsn(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    /// A DSN for database `db` through the socket as root.
    pub fn socket_dsn(&self, db: &str) -> String {
        format!(
            "mysql://root@localhost/{db}?socket={}",
            self.socket().display()
        )
    }

    fn try_connect(&self, db: &str) -> Result<Conn, String> {
        Conn::new(
            OptsBuilder::new()
                .socket(Some(self.socket().to_string_lossy()))
                .user(Some("root"))
                .db_name(Some(db).filter(|d| !d.is_empty()))
                .init(vec!["SET time_zone = '+00:00'"]),
        )
        .map_err(|e| e.to_string())
    }

    /// A root connection through the socket.
    pub fn conn(&self, db: &str) -> Conn {
        self.try_connect(db).expect("connect to the test server")
    }

    /// Run statements; panics on an error in any of them (the driver's `query_drop` does not
    /// report errors of the statements after the first).
    pub fn sql(&self, db: &str, sql: &str) {
        let mut conn = self.conn(db);
        let mut result = conn
            .query_iter(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        while let Some(set) = result.iter() {
            for row in set {
                row.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// The first column of the first row, as text.
    pub fn value(&self, db: &str, sql: &str) -> String {
        let v: Option<Option<String>> = self
            .conn(db)
            .query_first(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        v.flatten().unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for MariaServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A repository in a temporary directory.
pub struct Repo {
    _dir: TempDir,
    pub repo: Repository,
}

pub fn repo() -> Repo {
    let dir = tempfile::Builder::new()
        .prefix("bulwark-repo-")
        .tempdir()
        .unwrap();
    let backend = StoreBackend::local(&dir.path().join("repo"), true).unwrap();
    let repo = Repository::init(
        Arc::new(backend),
        &Credential::Passphrase("correct horse battery staple".into()),
        Settings::default(),
    )
    .unwrap();
    Repo { _dir: dir, repo }
}

/// A backup of the MariaDB database at `dsn` as dataset `shop`, with the programs of
/// [`MariadbTools::locate`] (read when called).
pub fn backup_opts(dsn: &str) -> DbBackupOptions {
    DbBackupOptions {
        source: DbSource::Mariadb(MariadbBackupOptions {
            dsn: dsn.to_string(),
            checksum_max_bytes: 1 << 30,
            tools: MariadbTools::locate(),
        }),
        tags: vec![],
        host: None,
        time: None,
        dataset: Some("shop".into()),
    }
}
