//! S3-compatible repositories against a real server process (moto) on loopback: backup, copy to a
//! second bucket and to a local replica, restore from each; copies killed and resumed; packs
//! deleted and corrupted, found by `check --read-data`, healed by `repair packs`; and a faulty
//! network between Bulwark and the server.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::moto::MotoServer;
use serde_json::Value;

const PASSWORD: &str = "s3 test passphrase";

struct Moto {
    server: MotoServer,
    /// Where the server logs each request, when started with `start_logged`.
    log: Option<PathBuf>,
}

impl std::ops::Deref for Moto {
    type Target = MotoServer;
    fn deref(&self) -> &MotoServer {
        &self.server
    }
}

impl Moto {
    fn start() -> Moto {
        Moto::spawn(None)
    }

    fn start_logged(log: &Path) -> Moto {
        Moto::spawn(Some(log))
    }

    /// GET requests logged so far (`start_logged` only).
    fn gets(&self) -> usize {
        thread::sleep(Duration::from_millis(300)); // the server logs after it answers
        let log = std::fs::read_to_string(self.log.as_ref().expect("a logged server")).unwrap();
        log.lines().filter(|l| l.contains("\"GET /")).count()
    }

    fn spawn(log: Option<&Path>) -> Moto {
        let server = MotoServer::start(log);
        Moto {
            server,
            log: log.map(Path::to_path_buf),
        }
    }

    fn create_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "bucket creation failed: {resp}"
        );
    }

    fn url(&self, bucket: &str, prefix: &str) -> String {
        url_at(self.port, bucket, prefix)
    }
}

fn url_at(port: u16, bucket: &str, prefix: &str) -> String {
    format!(
        "s3://{bucket}/{prefix}?region=us-east-1&endpoint=http://127.0.0.1:{port}&allow_http=true"
    )
}

fn bulwark(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bulwark"));
    c.args(args)
        .env("BULWARK_PASSWORD", PASSWORD)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("BULWARK_CACHE_DIR", cache_dir())
        .env_remove("BULWARK_REPO")
        .env_remove("BULWARK_PASSWORD_FILE")
        .env_remove("BULWARK_KEY_FILE")
        .stdin(Stdio::null());
    c
}

/// One local cache for every command of this test process (entries are kept per repository).
fn cache_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn run(args: &[&str]) -> Output {
    let out = bulwark(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "bulwark panicked on {args:?}: {stderr}"
    );
    out
}

fn ok(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "bulwark {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Mixed content: compressible text and random bytes, a few MiB, many files.
fn make_source(dir: &Path, files: usize, seed: u64) {
    let mut state = seed | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..files {
        let sub = dir.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&sub).unwrap();
        let len = (next() % 400_000) as usize;
        let data: Vec<u8> = if i % 2 == 0 {
            (0..len).map(|_| next() as u8).collect()
        } else {
            format!("line {i} of a compressible file\n")
                .repeat(len / 30 + 1)
                .into_bytes()
        };
        std::fs::write(sub.join(format!("f{i}.dat")), data).unwrap();
    }
}

fn trees_equal(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trees differ: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

#[test]
fn backup_to_s3_copy_to_replicas_restore_from_each_and_heal() {
    let moto = Moto::start();
    moto.create_bucket("primary-eu");
    moto.create_bucket("replica-us");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src, 60, 7);
    let primary = moto.url("primary-eu", "prod");
    let replica = moto.url("replica-us", "prod");
    let local = tmp.path().join("local-replica");
    let local = local.to_str().unwrap();

    ok(&["init", "-r", &primary, "--pack-size-mib", "1"]);
    let first = ok(&["backup", "-r", &primary, src.to_str().unwrap(), "--json"]);
    std::fs::write(src.join("d0/new.txt"), "a second day").unwrap();
    ok(&["backup", "-r", &primary, src.to_str().unwrap(), "--json"]);
    ok(&["init", "-r", &replica, "--replica-of", &primary]);
    ok(&["init", "-r", local, "--replica-of", &primary]);

    let status = ok(&[
        "replica", "status", "-r", &primary, "--to", &replica, "--json",
    ]);
    assert_eq!(status["missing_on_replica"].as_array().unwrap().len(), 2);
    assert!(status["bytes_missing_on_replica"].as_u64().unwrap() > 0);

    let copied = ok(&["copy", "-r", &primary, "--to", &replica, "--json"]);
    assert_eq!(copied["mode"], "verbatim");
    assert_eq!(copied["snapshots_copied"].as_array().unwrap().len(), 2);
    let again = ok(&["copy", "-r", &primary, "--to", &replica, "--json"]);
    assert_eq!(again["packs_copied"], 0, "a second copy must send nothing");
    ok(&["copy", "-r", &primary, "--to", local, "--json"]);
    let status = ok(&[
        "replica", "status", "-r", &primary, "--to", &replica, "--json",
    ]);
    assert_eq!(status["in_sync"], true);
    assert_eq!(status["bytes_missing_on_replica"], 0);

    for repo in [primary.as_str(), replica.as_str(), local] {
        let report = ok(&["check", "-r", repo, "--read-data", "--json"]);
        assert_eq!(report["ok"], true, "{repo}: {report}");
        let target = tmp.path().join(format!("restore-{}", repo.len()));
        ok(&[
            "restore",
            "-r",
            repo,
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ]);
        trees_equal(&src, &restored(&target, &src));
    }
    let first_id = first["snapshot_id"].as_str().unwrap();
    let target = tmp.path().join("restore-first");
    ok(&[
        "restore",
        "-r",
        &replica,
        &first_id[..8],
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    assert!(!restored(&target, &src).join("d0/new.txt").exists());

    // Damage the primary through the backend: one pack deleted, one corrupted.
    let key = bulwark_repo::Credential::Passphrase(PASSWORD.into());
    let open = |url: &str| {
        // SAFETY: tests set these before any thread reads the environment in this process.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        }
        bulwark_repo::Repository::open(
            bulwark_repo::backend::open_location(url, false).unwrap(),
            &key,
        )
        .unwrap()
    };
    let repo = open(&primary);
    let mut packs = repo.backend().list(bulwark_repo::FileKind::Pack).unwrap();
    packs.sort();
    assert!(packs.len() >= 3);
    repo.backend()
        .remove(bulwark_repo::FileKind::Pack, &packs[0].0)
        .unwrap();
    let mut bytes = repo
        .backend()
        .read(bulwark_repo::FileKind::Pack, &packs[1].0)
        .unwrap()
        .to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    repo.backend()
        .remove(bulwark_repo::FileKind::Pack, &packs[1].0)
        .unwrap();
    repo.backend()
        .create(bulwark_repo::FileKind::Pack, &packs[1].0, bytes.into())
        .unwrap();

    let out = run(&["check", "-r", &primary, "--read-data", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let damaged: Vec<&str> = report["damaged_packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        damaged.contains(&packs[0].0.as_str()) && damaged.contains(&packs[1].0.as_str()),
        "{report}"
    );
    assert!(!report["affected"].as_array().unwrap().is_empty());

    let healed = ok(&[
        "repair", "packs", "-r", &primary, "--from", &replica, "--json",
    ]);
    assert_eq!(healed["replaced"].as_array().unwrap().len(), 2, "{healed}");
    let report = ok(&["check", "-r", &primary, "--read-data", "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    let target = tmp.path().join("restore-healed");
    ok(&[
        "restore",
        "-r",
        &primary,
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    trees_equal(&src, &restored(&target, &src));
}

#[test]
fn permanent_s3_errors_are_one_clear_line() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src, 3, 1);
    // No such bucket: nothing there to open.
    let out = run(&["snapshots", "-r", &moto.url("no-such-bucket", "x")]);
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Initialising into a bucket nobody created says so, and exits 1.
    let out = run(&["init", "-r", &moto.url("no-such-bucket", "x")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("the bucket does not exist"), "{stderr}");
    // Nothing listening at the endpoint.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(&["init", "-r", &url_at(dead, "b", "x")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot reach the storage endpoint"),
        "{stderr}"
    );
    // An unknown URL parameter is a usage problem, reported before any request.
    let out = run(&["snapshots", "-r", "s3://b/x?regoin=eu-west-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown s3 parameter"));
}

#[test]
fn a_killed_copy_resumes_without_resending_and_ends_identical() {
    let moto = Moto::start();
    moto.create_bucket("offsite");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src, 120, 3);
    let primary = tmp.path().join("primary");
    let primary = primary.to_str().unwrap();
    let replica = moto.url("offsite", "r");
    ok(&["init", "-r", primary, "--pack-size-mib", "1"]);
    ok(&["backup", "-r", primary, src.to_str().unwrap()]);
    ok(&["init", "-r", &replica, "--replica-of", primary]);

    // How long a whole copy takes here, measured on a throwaway replica.
    moto.create_bucket("probe");
    let probe = moto.url("probe", "r");
    ok(&["init", "-r", &probe, "--replica-of", primary]);
    let started = Instant::now();
    let full = ok(&["copy", "-r", primary, "--to", &probe, "--json"]);
    let whole = started.elapsed();
    let total_packs = full["packs_copied"].as_u64().unwrap();
    assert!(total_packs >= 10, "want many packs, got {total_packs}");

    let kills = if std::env::var_os("BULWARK_THOROUGH").is_some() {
        40
    } else {
        5
    };
    let mut rng = 0x9e3779b97f4a7c15u64;
    for _ in 0..kills {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = whole.mul_f64((rng % 1000) as f64 / 1000.0);
        let mut child = bulwark(&["copy", "-r", primary, "--to", &replica])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        // Whatever landed, nothing half-copied is visible: every visible snapshot restores.
        let report = ok(&["check", "-r", &replica, "--json"]);
        assert_eq!(report["ok"], true, "{report}");
    }
    let landed = ok(&[
        "replica", "status", "-r", primary, "--to", &replica, "--json",
    ]);
    let missing = landed["packs_missing_on_replica"].as_u64().unwrap();
    let last = ok(&["copy", "-r", primary, "--to", &replica, "--json"]);
    assert_eq!(
        last["packs_copied"].as_u64().unwrap(),
        missing,
        "the final copy re-sent packs that had landed"
    );
    let report = ok(&["check", "-r", &replica, "--read-data", "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    let target = tmp.path().join("restore");
    ok(&[
        "restore",
        "-r",
        &replica,
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    trees_equal(&src, &restored(&target, &src));
}

/// A TCP proxy that refuses, delays or cuts off a fraction of connections.
struct FaultyProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    faults: Arc<AtomicU64>,
}

impl FaultyProxy {
    fn start(upstream: u16, percent_faulty: u64) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(AtomicU64::new(0));
        let (stop2, faults2) = (stop.clone(), faults.clone());
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let roll = (n >> 33) % 100;
                let mode = if roll < percent_faulty {
                    1 + (n >> 20) % 3
                } else {
                    0
                };
                if mode != 0 {
                    faults2.fetch_add(1, Ordering::Relaxed);
                }
                thread::spawn(move || proxy_connection(client, upstream, mode));
            }
        });
        FaultyProxy { port, stop, faults }
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// mode 0: pass; 1: close at once; 2: delay 300 ms then pass; 3: pass the request, cut the reply.
fn proxy_connection(client: TcpStream, upstream: u16, mode: u64) {
    if mode == 1 {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if mode == 2 {
        thread::sleep(Duration::from_millis(300));
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    if mode == 3 {
        let mut buf = [0u8; 64];
        if let Ok(n) = s_read.read(&mut buf) {
            let _ = c_write.write_all(&buf[..n.min(20)]);
        }
        let _ = c_write.shutdown(Shutdown::Both);
        let _ = s_read.shutdown(Shutdown::Both);
    } else {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    }
    let _ = up.join();
}

#[test]
fn faults_between_bulwark_and_storage_never_leave_a_snapshot_with_missing_data() {
    let moto = Moto::start();
    moto.create_bucket("flaky");
    moto.create_bucket("flaky-copy");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src, 40, 11);
    let proxy = FaultyProxy::start(moto.port, 15);
    let direct = moto.url("flaky", "r");
    let flaky = url_at(proxy.port, "flaky", "r");
    let direct_copy = moto.url("flaky-copy", "r");
    let flaky_copy = url_at(proxy.port, "flaky-copy", "r");
    ok(&["init", "-r", &direct, "--pack-size-mib", "1"]);
    ok(&["init", "-r", &direct_copy, "--replica-of", &direct]);

    let rounds = if std::env::var_os("BULWARK_THOROUGH").is_some() {
        12
    } else {
        3
    };
    let mut succeeded = 0;
    for round in 0..rounds {
        std::fs::write(
            src.join(format!("round-{round}.txt")),
            format!("round {round}"),
        )
        .unwrap();
        for args in [
            vec!["backup", "-r", flaky.as_str(), src.to_str().unwrap()],
            vec!["copy", "-r", flaky.as_str(), "--to", flaky_copy.as_str()],
        ] {
            let out = run(&args);
            match out.status.code() {
                Some(0) => succeeded += 1,
                Some(1) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        stderr.starts_with("error:") || stderr.contains("\nerror:"),
                        "unclear failure: {stderr}"
                    );
                }
                other => panic!(
                    "{args:?} ended with {other:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }
        // Judged without the faults: whatever became visible is complete.
        for repo in [&direct, &direct_copy] {
            let report = ok(&["check", "-r", repo, "--read-data", "--json"]);
            assert_eq!(report["ok"], true, "{repo}: {report}");
        }
    }
    assert!(
        proxy.faults.load(Ordering::Relaxed) > 0,
        "the proxy injected no faults"
    );
    assert!(
        succeeded > 0,
        "retries should carry most operations through 15% faults"
    );
    let target = tmp.path().join("restore");
    ok(&[
        "restore",
        "-r",
        &direct_copy,
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
}

#[test]
fn the_local_cache_saves_a_request_per_tree_and_never_serves_a_damaged_object() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start_logged(&tmp.path().join("moto.log"));
    moto.create_bucket("cached");
    let url = moto.url("cached", "r");
    let src = tmp.path().join("src");
    // Many directories, so many trees.
    for d in 0..40 {
        make_source(&src.join(format!("dir{d}")), 3, d);
    }
    let init = ok(&["init", "--json", "-r", &url]);
    ok(&["backup", "--json", "-r", &url, src.to_str().unwrap()]);
    let trees = 1 + 40 * 4; // src, dir*, dir*/d0..d2 (and a few above src)

    let before = moto.gets();
    ok(&[
        "backup",
        "--json",
        "--no-cache",
        "-r",
        &url,
        src.to_str().unwrap(),
    ]);
    let uncached = moto.gets() - before;
    assert!(
        uncached >= trees,
        "{uncached} GETs for {trees} trees without a cache"
    );

    let before = moto.gets();
    ok(&["backup", "--json", "-r", &url, src.to_str().unwrap()]);
    let cached = moto.gets() - before;
    assert!(
        cached * 10 < uncached,
        "a no-change backup made {cached} GETs with the cache, {uncached} without"
    );
    let repo_cache = cache_dir().join(init["id"].as_str().unwrap());
    let cached_files: Vec<PathBuf> = ["index", "snapshots", "data"]
        .iter()
        .flat_map(|d| std::fs::read_dir(repo_cache.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    assert!(cached_files.len() >= 3, "cache holds {cached_files:?}");

    // Damage every cached object: commands fetch again and still restore exactly. Unchanged
    // directories keep their trees, so the snapshots share tree packs: restoring each one reads
    // every tree pack the cache may hold.
    for f in &cached_files {
        let len = std::fs::metadata(f).unwrap().len() as usize;
        std::fs::write(f, vec![0x5a; len]).unwrap();
    }
    let snapshots = ok(&["snapshots", "--json", "-r", &url]);
    for (i, snap) in snapshots.as_array().unwrap().iter().enumerate() {
        let target = tmp.path().join(format!("restore-{i}"));
        ok(&[
            "restore",
            "--json",
            "-r",
            &url,
            snap["id"].as_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
        ]);
        trees_equal(&src, &restored(&target, &src));
    }
    for f in &cached_files {
        if let Ok(data) = std::fs::read(f) {
            assert!(
                data.iter().any(|&b| b != 0x5a),
                "{} still damaged",
                f.display()
            );
        }
    }
}
