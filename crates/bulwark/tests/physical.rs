//! PostgreSQL physical backups, WAL archiving and point-in-time recovery against real clusters.
//! Each test starts its own cluster with `archive_command = 'bulwark wal-push …'` (the server's
//! account runs it, so the repository, its key file and the spool belong to that account).
//!
//! - a pgbench writer runs through a base backup and archiving; a restore to a time between two
//!   known transactions lands between them, consistent (pgbench's balances add up); `check` is
//!   clean; a restore test reaches a random target and measures the data loss by heartbeats;
//! - a missing segment is a gap that `check` reports, and a restore past it fails clearly;
//! - the repository going away makes `archive_command` fail (PostgreSQL keeps the segment), and
//!   archiving recovers when it returns, synchronously and asynchronously;
//! - prune removes the WAL only older base backups needed.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A cluster archiving into a repository through `bulwark wal-push`, with its policy file.
struct Setup {
    server: PgServer,
    repo_dir: PathBuf,
    policy: PathBuf,
    key: PathBuf,
    /// Holds the repository, policy file, key and spool.
    _dir: tempfile::TempDir,
}

const DATASET: &str = "db";

impl Setup {
    fn new(wal_async: bool, extra_conf: &str) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("bulwark-physical-")
            .tempdir()
            .unwrap();
        let repo_dir = dir.path().join("repo");
        let key = dir.path().join("repo.key");
        let out = run(bulwark()
            .args(["init", "--json", "-r"])
            .arg(&repo_dir)
            .arg("--new-key-file")
            .arg(&key));
        out.assert_ok();
        let policy = dir.path().join("bulwark.toml");
        let spool = dir.path().join("spool");
        let mut server_conf = format!(
            "wal_level = replica\narchive_mode = on\narchive_timeout = 0\nmax_wal_senders = 4\n\
             archive_command = '{} wal-push -c {} --dataset {DATASET} %p'\nwal_keep_size = 0\n",
            bin().display(),
            policy.display()
        );
        server_conf += extra_conf;
        // Everything the server's account must reach belongs to it.
        if let Some((uid, gid)) = pg_run_as() {
            for p in [dir.path(), repo_dir.as_path(), key.as_path()] {
                chown_tree(p, uid, gid);
            }
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let server = PgServer::start_with(&server_conf);
        let text = format!(
            "[repositories.primary]\nurl = \"{}\"\nkey_file = \"{}\"\n\n\
             [datasets.{DATASET}]\nkind = \"postgres\"\nmethod = \"physical\"\nsource = \"{}\"\n\
             schedule = \"daily at 02:00\"\nheartbeat = \"1s\"\nwal_async = {wal_async}\nwal_spool = \"{}\"\n",
            repo_dir.display(),
            key.display(),
            server.dsn("postgres"),
            spool.display()
        );
        fs::write(&policy, text).unwrap();
        if let Some((uid, gid)) = pg_run_as() {
            std::os::unix::fs::chown(&policy, Some(uid), Some(gid)).unwrap();
        }
        Setup {
            server,
            repo_dir,
            policy,
            key,
            _dir: dir,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bulwark();
        c.arg("-r")
            .arg(&self.repo_dir)
            .arg("--key-file")
            .arg(&self.key)
            .args(args);
        c
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let out = run_limited(&mut self.cmd(args), None, Duration::from_secs(300));
        out.assert_ok();
        out.json()
    }

    /// A base backup; `read` is `auto`, `direct` or `pg_basebackup`.
    fn base_backup(&self, read: &str) -> Value {
        self.json(&[
            "backup",
            "--json",
            "--postgres",
            &self.server.dsn("postgres"),
            "--physical",
            "--dataset",
            DATASET,
            "--base-backup",
            read,
        ])
    }

    fn sql(&self, sql: &str) -> String {
        self.server.psql("postgres", sql)
    }

    /// Switch to a new segment and wait until the finished one is archived.
    fn switch_and_archive(&self) -> String {
        let seg = self.sql("SELECT pg_walfile_name(pg_switch_wal())");
        self.wait_archived(&seg, Duration::from_secs(60));
        seg
    }

    fn wait_archived(&self, seg: &str, limit: Duration) {
        let t = Instant::now();
        loop {
            let last = self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            if last.as_str() >= seg && !last.is_empty() && !last.ends_with(".history") {
                return;
            }
            assert!(
                t.elapsed() < limit,
                "{seg} not archived within {limit:?}: {}",
                self.sql("SELECT row_to_json(a) FROM pg_stat_archiver a")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The archived WAL objects in the repository.
    fn wal_objects(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.repo_dir.join("wal"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    if p.is_dir() {
        for e in fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

/// pgbench against the server, in the background.
fn pgbench(server: &PgServer, args: &[&str]) -> std::process::Child {
    Command::new(server.bindir.join("pgbench"))
        .args(args)
        .arg(server.dsn("postgres"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A restored data directory, started on its own to be looked at (archiving off).
fn start_restored(data: &Path) -> PgServer {
    PgServer::start_from(data, "archive_mode = off\n")
}

#[test]
fn base_backup_under_pgbench_then_pitr_between_two_transactions() {
    let s = Setup::new(false, "");
    let scale = scale(2, 20).to_string();
    let init = Command::new(s.server.bindir.join("pgbench"))
        .args(["-i", "-q", "-s", &scale])
        .arg(s.server.dsn("postgres"))
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    // A writer runs through the base backups and the archiving.
    let mut writer = pgbench(&s.server, &["-n", "-c", "2", "-T", "600"]);
    std::thread::sleep(Duration::from_millis(500));
    let streamed = s.base_backup("pg_basebackup");
    assert!(streamed["physical"]["direct"].is_null(), "{streamed}");
    assert!(
        !streamed["physical"]["pg_basebackup_version"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    // The second reads the data directory itself (the server runs here), while tables are also
    // made and dropped: files appear and vanish under the walk.
    let churning = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let churn = {
        let (churning, dsn, bindir) = (
            churning.clone(),
            s.server.dsn("postgres"),
            s.server.bindir.clone(),
        );
        std::thread::spawn(move || {
            let mut i = 0;
            while churning.load(std::sync::atomic::Ordering::Relaxed) {
                let sql = format!(
                    "CREATE TABLE churn_{i} AS SELECT generate_series(1, 2000) AS n; DROP TABLE IF EXISTS churn_{};",
                    i.max(1) - 1
                );
                let _ = Command::new(bindir.join("psql"))
                    .arg(&dsn)
                    .args(["-qXc", &sql])
                    .output();
                i += 1;
            }
        })
    };
    let b = s.base_backup("auto");
    churning.store(false, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    let facts = &b["physical"];
    assert_eq!(
        facts["direct"], true,
        "the server's directory is on this host: {b}"
    );
    assert_eq!(facts["timeline"], 1, "{b}");
    assert!(facts["files"].as_u64().unwrap() > 500, "{b}");
    let start: String = facts["start_lsn"].as_str().unwrap().into();
    let end: String = facts["end_lsn"].as_str().unwrap().into();
    assert_ne!(start, end, "pgbench wrote during the backup: {b}");
    assert_eq!(
        facts["system_identifier"].as_str().unwrap(),
        s.sql("SELECT system_identifier FROM pg_control_system()")
    );
    assert_eq!(
        streamed["physical"]["system_identifier"],
        facts["system_identifier"]
    );
    s.switch_and_archive();
    // Two known transactions, a target time between them.
    s.sql("CREATE TABLE marks (name text PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())");
    s.sql("INSERT INTO marks (name) VALUES ('before')");
    std::thread::sleep(Duration::from_millis(300));
    let target = s.sql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_millis(300));
    s.sql("INSERT INTO marks (name) VALUES ('after')");
    std::thread::sleep(Duration::from_millis(300));
    let _ = writer.kill();
    let _ = writer.wait();
    let last = s.switch_and_archive();
    assert!(!s.wal_objects().is_empty());

    // check: every base backup's chain is whole.
    let out = run(&mut s.cmd(&["check", "--json", "--read-data"]));
    let v = out.json();
    out.assert_ok();
    assert!(v["wal_files"].as_u64().unwrap() >= 2, "{v}");

    // Restore to the time between the two transactions.
    let restored = tempdir("bulwark-pitr-");
    let data = restored.path().join("data");
    let r = s.json(&[
        "restore",
        "latest",
        "--json",
        "--dataset",
        DATASET,
        "--to-time",
        &target,
        "--postgres-datadir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(
        r["snapshot_id"], b["snapshot_id"],
        "the newest base backup before the target, read from the directory: {r}"
    );
    assert_eq!(
        r["outcome"]["timeline"], 2,
        "promoted onto a new timeline: {r}"
    );
    assert!(r["wal_files_fetched"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        r["outcome"]["stop"]
            .as_str()
            .unwrap_or_default()
            .contains("recovery stopping before commit"),
        "{r}"
    );
    assert!(
        data.join("pg_wal/archive_status/00000002.history.ready")
            .exists(),
        "the new timeline's history waits to be archived"
    );
    let looked = start_restored(&data);
    let marks = looked.psql(
        "postgres",
        "SELECT string_agg(name, ',' ORDER BY name) FROM marks",
    );
    assert_eq!(
        marks, "before",
        "the restore lands between the two transactions"
    );
    let sums = looked.psql(
        "postgres",
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT coalesce(sum(delta), 0) FROM pgbench_history)
            AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT coalesce(sum(delta), 0) FROM pgbench_history)",
    );
    assert_eq!(
        sums, "t",
        "pgbench's balances add up: a transaction-consistent point"
    );
    assert!(
        looked
            .psql("postgres", "SELECT count(*) FROM pgbench_history")
            .parse::<u64>()
            .unwrap()
            > 0,
        "the writer's transactions before the target are there"
    );
    drop(looked);

    // Latest: everything archived, both marks; from the newest base backup, and from the one
    // pg_basebackup streamed.
    let _ = last;
    for (name, spec) in [
        ("latest", "latest"),
        ("streamed", streamed["snapshot_id"].as_str().unwrap()),
    ] {
        let data = restored.path().join(name);
        let r = s.json(&[
            "restore",
            spec,
            "--json",
            "--dataset",
            DATASET,
            "--postgres-datadir",
            data.to_str().unwrap(),
        ]);
        assert!(r["wal_files_fetched"].as_u64().unwrap() >= 2, "{r}");
        assert!(
            r["wal_files_ahead"].as_u64().unwrap() >= 1,
            "segments are read ahead while the server replays: {r}"
        );
        assert!(
            r["wal_fetch_program"]
                .as_str()
                .unwrap()
                .ends_with("/bulwark-wal-fetch"),
            "the small client answers the server's restore_command: {r}"
        );
        assert!(
            !data.join("pg_wal/.bulwark-ahead").exists(),
            "nothing read ahead is left in the restored pg_wal"
        );
        let expected = if name == "latest" { &b } else { &streamed };
        assert_eq!(r["snapshot_id"], expected["snapshot_id"], "{r}");
        let looked = start_restored(&data);
        assert_eq!(
            looked.psql(
                "postgres",
                "SELECT string_agg(name, ',' ORDER BY name) FROM marks"
            ),
            "after,before",
            "{name}"
        );
    }

    // A restore test: a random target inside the window, heartbeats written by `run`.
    for _ in 0..3 {
        let out = run(bulwark()
            .arg("--key-file")
            .arg(&s.key)
            .args(["run", "--due", "-c"])
            .arg(&s.policy));
        assert!(out.code == 0 || out.code == 1, "{}", out.describe());
        s.sql("INSERT INTO marks (name) VALUES ('x' || clock_timestamp())");
        std::thread::sleep(Duration::from_millis(1100));
    }
    let heartbeats: u64 = s
        .sql("SELECT count(*) FROM public.bulwark_heartbeat")
        .parse()
        .unwrap();
    assert!(heartbeats >= 2, "run writes heartbeats: {heartbeats}");
    s.switch_and_archive();
    s.sql("INSERT INTO marks (name) VALUES ('y')");
    s.switch_and_archive();
    let out = run_limited(
        &mut s.cmd(&[
            "restore-test",
            "latest",
            "--json",
            "--dataset",
            DATASET,
            "--check-sql",
            "SELECT count(*) > 0 FROM pgbench_branches",
        ]),
        None,
        Duration::from_secs(300),
    );
    let rt = out.json();
    out.assert_ok();
    assert_eq!(rt["passed"], true, "{rt:#}");
    let pit = &rt["point_in_time"];
    assert!(pit["target"].is_string(), "{rt:#}");
    let names: Vec<&str> = rt["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in ["manifest", "recovery", "integrity"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    eprintln!("restore test: {}", serde_json::to_string(pit).unwrap());

    // status judges the RPO by the newest archived segment.
    let out = run(bulwark()
        .arg("--key-file")
        .arg(&s.key)
        .args(["status", "--json", "-c"])
        .arg(&s.policy));
    let st = out.json();
    let rpo = st["datasets"][DATASET]["aspects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "rpo")
        .unwrap()
        .clone();
    assert_eq!(rpo["verdict"], "met", "{rpo}");
    assert!(
        rpo["actual"].as_str().unwrap().contains("WAL segment"),
        "{rpo}"
    );
    assert!(
        st["datasets"][DATASET]["facts"]["last_wal"].is_string(),
        "{st}"
    );
}

#[test]
fn a_missing_segment_is_a_gap_and_a_restore_past_it_fails() {
    let s = Setup::new(false, "");
    s.sql("CREATE TABLE t (i int)");
    s.base_backup("auto");
    let mut segs = Vec::new();
    for i in 0..3 {
        s.sql(&format!("INSERT INTO t VALUES ({i})"));
        segs.push(s.switch_and_archive());
    }
    // Take the middle one away.
    let victim = s
        .wal_objects()
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(&segs[1]))
        .expect("the middle segment is archived");
    fs::remove_file(&victim).unwrap();

    let out = run(&mut s.cmd(&["check", "--json"]));
    out.assert_code(1);
    let v = out.json();
    let errors = v["errors"].to_string();
    assert!(
        errors.contains(&segs[1]) && errors.contains("missing"),
        "{v}"
    );

    let dir = tempdir("bulwark-gap-");
    let out = run_limited(
        &mut s.cmd(&[
            "restore",
            "latest",
            "--dataset",
            DATASET,
            "--postgres-datadir",
            dir.path().join("data").to_str().unwrap(),
        ]),
        None,
        Duration::from_secs(120),
    );
    out.assert_code(1).assert_one_error_line();
    assert!(
        out.stderr.contains(&segs[1]) && out.stderr.contains("missing"),
        "{}",
        out.describe()
    );
    assert!(!dir.path().join("data").exists(), "nothing was restored");
}

fn repository_going_away(wal_async: bool) {
    let s = Setup::new(wal_async, "");
    s.sql("CREATE TABLE t (i int)");
    s.switch_and_archive();
    let away = s.repo_dir.with_extension("away");
    fs::rename(&s.repo_dir, &away).unwrap();
    s.sql("INSERT INTO t VALUES (1)");
    let seg = s.sql("SELECT pg_walfile_name(pg_switch_wal())");
    // PostgreSQL tries, fails, keeps the file and says why in its log.
    let t = Instant::now();
    loop {
        let failed = s.sql("SELECT coalesce(last_failed_wal, '') FROM pg_stat_archiver");
        if failed == seg {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "archive_command never failed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready = s
        .server
        .dir
        .join(format!("data/pg_wal/archive_status/{seg}.ready"));
    assert!(ready.exists(), "PostgreSQL keeps {seg} for another try");
    assert_ne!(
        s.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"),
        seg
    );
    let log = fs::read_to_string(s.server.dir.join("log")).unwrap();
    assert!(
        log.contains(&format!("wal-push pg_wal/{seg}")) && log.contains("no repository"),
        "the server's log says what failed:\n{log}"
    );
    assert!(
        !s.repo_dir.exists(),
        "nothing was written where the repository was"
    );
    // It comes back: the next try succeeds (new WAL wakes the archiver at once).
    fs::rename(&away, &s.repo_dir).unwrap();
    s.sql("INSERT INTO t VALUES (2)");
    s.sql("SELECT pg_switch_wal()");
    s.wait_archived(&seg, Duration::from_secs(120));
    assert!(!ready.exists());
    assert!(
        s.wal_objects()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(&seg))
    );
}

#[test]
fn an_unreachable_repository_fails_archiving_until_it_returns() {
    repository_going_away(false);
}

#[test]
fn an_unreachable_repository_fails_async_archiving_until_it_returns() {
    repository_going_away(true);
}

#[test]
fn async_archiving_keeps_up_with_a_backlog() {
    // A backlog of segments made while archiving fails, then archived by the pusher.
    let s = Setup::new(true, "");
    s.sql("CREATE TABLE t (i int, pad text)");
    let away = s.repo_dir.with_extension("away");
    fs::rename(&s.repo_dir, &away).unwrap();
    let n = scale(8, 64);
    for i in 0..n {
        s.sql(&format!(
            "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g; SELECT {i}"
        ));
        s.sql("SELECT pg_switch_wal()");
    }
    let last = s.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    fs::rename(&away, &s.repo_dir).unwrap();
    let t = Instant::now();
    let before: u64 = s
        .sql("SELECT archived_count FROM pg_stat_archiver")
        .parse()
        .unwrap();
    s.sql("INSERT INTO t VALUES (0, 'wake')");
    s.sql("SELECT pg_switch_wal()");
    s.wait_archived(&last, Duration::from_secs(300));
    let done: u64 = s
        .sql("SELECT archived_count FROM pg_stat_archiver")
        .parse()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "async archiving: {} files in {secs:.2}s = {:.1} files/s",
        done - before,
        (done - before) as f64 / secs
    );
    assert!(done - before >= n as u64);
    let out = run(&mut s.cmd(&["check", "--json", "--read-data"]));
    let v = out.json();
    assert!(v["wal_files"].as_u64().unwrap() >= n as u64, "{v}");
    let _ = out;
}

#[test]
fn direct_reading_needs_the_servers_own_directory_and_auto_falls_back_to_pg_basebackup() {
    use std::os::unix::process::CommandExt;
    if pg_run_as().is_none() {
        eprintln!("skipped: needs root, to back up as an account that cannot read the cluster");
        return;
    }
    const NOBODY: u32 = 65534;
    let s = Setup::new(false, "");
    s.sql("CREATE TABLE t AS SELECT generate_series(1, 100) AS i");
    // An account that cannot read the data directory, with a repository of its own.
    let dir = tempdir("bulwark-direct-");
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (repo, key) = (dir.path().join("repo"), dir.path().join("key"));
    let as_nobody = |args: &[&str]| {
        let mut c = bulwark();
        c.uid(NOBODY)
            .gid(NOBODY)
            .current_dir("/")
            .arg("-r")
            .arg(&repo)
            .args(args);
        c
    };
    run(&mut as_nobody(&[
        "init",
        "--new-key-file",
        key.to_str().unwrap(),
    ]))
    .assert_ok();
    let backup = |read: &str| {
        as_nobody(&[
            "--key-file",
            key.to_str().unwrap(),
            "backup",
            "--json",
            "--postgres",
            &s.server.dsn("postgres"),
            "--physical",
            "--dataset",
            DATASET,
            "--base-backup",
            read,
        ])
    };
    let out = run(&mut backup("direct"));
    out.assert_code(1).assert_one_error_line();
    assert!(
        out.stderr
            .contains("cannot read the cluster's data directory itself")
            && out.stderr.contains("postmaster.pid")
            && out.stderr.contains("Permission denied"),
        "{}",
        out.describe()
    );
    let snaps = run(&mut as_nobody(&[
        "--key-file",
        key.to_str().unwrap(),
        "snapshots",
        "--json",
    ]));
    snaps.assert_ok();
    assert_eq!(snaps.json(), serde_json::json!([]), "nothing was saved");
    // auto reads through pg_basebackup instead, and says so.
    let out = run(&mut backup("auto"));
    out.assert_ok();
    let v = out.json();
    assert!(v["physical"]["direct"].is_null(), "{v}");
    assert!(v["physical"]["files"].as_u64().unwrap() > 500, "{v}");
}

#[test]
fn a_direct_base_backup_ends_only_once_its_wal_is_archived_and_stops_cleanly_on_sigint() {
    let s = Setup::new(false, "");
    s.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS i");
    s.switch_and_archive();
    let command = s.sql("SHOW archive_command");
    let set_archive = |c: &str| {
        s.sql(&format!("ALTER SYSTEM SET archive_command = '{c}'"));
        s.sql("SELECT pg_reload_conf()");
    };
    set_archive("/bin/false");
    let dsn = s.server.dsn("postgres");
    let spawn = || {
        s.cmd(&[
            "backup",
            "--json",
            "--postgres",
            &dsn,
            "--physical",
            "--dataset",
            DATASET,
            "--base-backup",
            "direct",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    // Archiving fails: the backup waits for its WAL, and stops cleanly when told to.
    let mut child = spawn();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup waits while its WAL is not archived"
    );
    // SAFETY: the child is ours and still running.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
    let snaps = s.json(&["snapshots", "--json"]);
    assert_eq!(snaps, serde_json::json!([]), "nothing was saved");
    // The server abandons the interrupted backup with its session: another one can start.
    let t = Instant::now();
    while s.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%pg_backup_%'",
    ) != "0"
    {
        assert!(t.elapsed() < Duration::from_secs(10), "the backup's session lingers");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Once archiving works again, the waiting backup ends, its last segment in the repository.
    let child = spawn();
    std::thread::sleep(Duration::from_secs(2));
    set_archive(&command);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let end = v["physical"]["end_lsn"].as_str().unwrap();
    let last = s.sql(&format!("SELECT pg_walfile_name('{end}')"));
    assert!(
        s.wal_objects()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(&last)),
        "{last} is archived when the backup returns: {:?}",
        s.wal_objects()
    );
}

#[test]
fn base_backups_share_the_blocks_of_unchanged_files_whichever_way_they_read() {
    let s = Setup::new(false, "");
    // About 30 MB that no later statement touches.
    s.sql(
        "CREATE TABLE still AS SELECT i, md5(i::text) AS m, repeat(md5((i * 7)::text), 3) AS pad
         FROM generate_series(1, 200000) AS i",
    );
    s.sql("CHECKPOINT");
    let streamed = s.base_backup("pg_basebackup");
    let direct = s.base_backup("direct");
    assert_eq!(direct["physical"]["direct"], true, "{direct}");
    let (read, added) = (
        direct["summary"]["bytes_read"].as_u64().unwrap(),
        direct["summary"]["bytes_added"].as_u64().unwrap(),
    );
    let first = streamed["summary"]["bytes_added"].as_u64().unwrap();
    assert!(read > 30_000_000, "{direct}");
    assert!(first > 30_000_000, "{streamed}");
    // What changed between them: pg_control, the WAL-related files, a few catalog pages; the
    // table's blocks are stored once, though one backup came through pg_basebackup's tar
    // stream and the other from the files themselves.
    assert!(
        added * 10 < first,
        "the second base backup added {added} bytes of {read}; the first {first}"
    );
}
