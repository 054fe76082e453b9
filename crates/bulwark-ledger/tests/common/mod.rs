//! A throwaway PostgreSQL cluster for the tests: `initdb` into a temporary directory, `postgres`
//! on a free loopback port, stopped when the last test using it drops it.
//!
//! The server binaries come from `$BULWARK_PG_BINDIR`, `pg_config --bindir` or
//! `/usr/lib/postgresql/*/bin`. `initdb` and
//! `postgres` refuse to run as root, so as root they run as the `postgres` user (the data
//! directory is handed to that user). The server dies with the thread that started it
//! (PR_SET_PDEATHSIG), so a test run killed outright does not leave it behind.
//!
//! Without the binaries the PostgreSQL tests are skipped with a message, unless
//! `BULWARK_REQUIRE_POSTGRES=1` makes that a failure.

#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct PgCluster {
    pub port: u16,
    dir: TempDir,
    stop: Option<mpsc::Sender<()>>,
    keeper: Option<JoinHandle<()>>,
    databases: AtomicU32,
}

/// The shared cluster, alive while some test holds it.
static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());

/// The cluster for a test, started if none is running; `None` (after saying so) when PostgreSQL
/// is not installed.
pub fn postgres() -> Option<Arc<PgCluster>> {
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = shared.upgrade() {
        return Some(c);
    }
    let Some(bindir) = bindir() else {
        if std::env::var("BULWARK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("PostgreSQL server binaries not found and BULWARK_REQUIRE_POSTGRES=1");
        }
        eprintln!(
            "SKIPPED: PostgreSQL server binaries not found (set BULWARK_PG_BINDIR or install postgresql)"
        );
        return None;
    };
    let cluster = Arc::new(PgCluster::start(&bindir));
    *shared = Arc::downgrade(&cluster);
    Some(cluster)
}

fn bindir() -> Option<PathBuf> {
    let has_server = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("BULWARK_PG_BINDIR") {
        return Some(PathBuf::from(d)).filter(|d| has_server(d));
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    // Debian's layout, newest version first, when pg_config is missing or points elsewhere.
    let mut debian: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()),
        )
    });
    from_pg_config
        .into_iter()
        .chain(debian)
        .find(|d| has_server(d))
}

/// The uid and gid to run the server as: ours, or the `postgres` user's when we are root.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let fields: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .expect("running as root needs a `postgres` user to run the server as");
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

fn as_server_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    fn start(bindir: &Path) -> PgCluster {
        let started = Instant::now();
        let mut dir = tempfile::Builder::new()
            .prefix("bulwark-pg-")
            .tempdir()
            .unwrap();
        let user = server_user();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let out = as_server_user(&mut Command::new(bindir.join("initdb")), user)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
                "-D",
            ])
            .arg(&data)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let log = dir.path().join("server.log");
        for _attempt in 0..5 {
            let port = free_port();
            let exited = Arc::new(AtomicBool::new(false));
            let (stop, keeper) =
                spawn_server(bindir, &data, dir.path(), &log, port, user, exited.clone());
            let mut cluster = PgCluster {
                port,
                dir,
                stop: Some(stop),
                keeper: Some(keeper),
                databases: AtomicU32::new(0),
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if cluster.client_for("postgres").is_ok() {
                    eprintln!("postgres on port {port} ready in {:.1?}", started.elapsed());
                    return cluster;
                }
                if exited.load(Ordering::SeqCst) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "postgres did not start: {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            // Exited: most likely another process took the port first. Try another.
            let text = fs::read_to_string(&log).unwrap_or_default();
            assert!(
                text.contains("could not bind") || text.contains("in use"),
                "postgres exited: {text}"
            );
            cluster.shutdown();
            dir = std::mem::replace(&mut cluster.dir, TempDir::new().unwrap());
        }
        panic!("postgres could not find a free port");
    }

    /// A client connected to `database` as the superuser.
    pub fn client_for(&self, database: &str) -> Result<postgres::Client, postgres::Error> {
        postgres::Client::connect(&self.url_for(database), postgres::NoTls)
    }

    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?connect_timeout=5",
            self.port
        )
    }

    /// A new, empty database, and its URL.
    pub fn fresh_database(&self) -> String {
        let name = format!("ledger_{}", self.databases.fetch_add(1, Ordering::SeqCst));
        let mut c = self.client_for("postgres").expect("connect to postgres");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        self.url_for(&name)
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(k) = self.keeper.take() {
            let _ = k.join();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the server from a thread of its own that stays alive until told to stop: the server
/// gets SIGKILL if that thread (hence this process) dies. Returns the stop channel and the thread.
fn spawn_server(
    bindir: &Path,
    data: &Path,
    socket_dir: &Path,
    log: &Path,
    port: u16,
    user: Option<(u32, u32)>,
    exited: Arc<AtomicBool>,
) -> (mpsc::Sender<()>, JoinHandle<()>) {
    let log = fs::File::create(log).unwrap();
    let mut cmd = Command::new(bindir.join("postgres"));
    as_server_user(&mut cmd, user)
        .arg("-D")
        .arg(data)
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-k",
        ])
        .arg(socket_dir)
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ])
        .args(["-c", "max_connections=60", "-c", "shared_buffers=16MB"])
        .current_dir(socket_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<std::io::Result<()>>();
    let keeper = std::thread::spawn(move || {
        let mut child: Child = match cmd.spawn() {
            Ok(c) => {
                ready_tx.send(Ok(())).unwrap();
                c
            }
            Err(e) => {
                ready_tx.send(Err(e)).unwrap();
                return;
            }
        };
        // Until told to stop (or the sender is dropped), watch for the server exiting by itself.
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            stop_rx.recv_timeout(Duration::from_millis(50))
        {
            if child.try_wait().ok().flatten().is_some() {
                exited.store(true, Ordering::SeqCst);
                return;
            }
        }
        // Fast shutdown (SIGINT); SIGKILL if it takes too long.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        exited.store(true, Ordering::SeqCst);
    });
    ready_rx.recv().unwrap().expect("start postgres");
    (stop_tx, keeper)
}
