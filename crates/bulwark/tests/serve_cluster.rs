//! Several `bulwark serve` nodes on one PostgreSQL ledger, on a real cluster: the node holding a
//! running backup is killed with SIGKILL and another takes the job over once its lease expires and
//! finishes the slot; no slot runs twice; the chain verifies with events appended by all three
//! nodes; the PostgreSQL server restarting under the nodes costs no job and no event.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

struct Node {
    name: String,
    child: Child,
    port: u16,
}

fn start_node(config: &Path, name: &str, init: bool) -> Node {
    let mut c = bulwark();
    c.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--poll-seconds",
        "1",
        "--lease-seconds",
        "3",
    ])
    .args(["--node", name, "--stop-grace-seconds", "1", "-c"])
    .arg(config)
    .env("BULWARK_LOG", "info")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if init {
        c.arg("--init");
    }
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let label = name.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("dashboard at http://127.0.0.1:").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap().parse::<u16>().unwrap());
            }
            eprintln!("[{label}] {line}");
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("node {name} did not start"));
    Node {
        name: name.into(),
        child,
        port,
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SAFETY: kill has no memory effects; the pid is our child's.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(port: u16, path: &str, token: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text[9..12].parse().unwrap()
}

fn events(config: &Path) -> Vec<Value> {
    let mut c = bulwark();
    c.args(["ledger", "events", "--json", "-c"]).arg(config);
    let out = run(&mut c);
    out.assert_ok();
    out.json().as_array().unwrap().clone()
}

fn ok_backups(config: &Path, dataset: &str) -> Vec<Value> {
    events(config)
        .into_iter()
        .filter(|e| e["kind"] == "backup" && e["dataset"] == dataset && e["ok"] == true)
        .collect()
}

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    start.elapsed()
}

#[test]
fn three_nodes_share_the_work_and_survive_a_dead_node_and_a_restarted_server() {
    let server = PgServer::start();
    server.psql("postgres", "CREATE DATABASE ledger");
    let dir = tempdir("bulwark-cluster-");
    let root: PathBuf = dir.path().to_path_buf();
    std::fs::write(root.join("pass"), "the cluster's passphrase").unwrap();
    let script = "import random, sys, time\nr = random.Random(11)\nfor _ in range(40):\n    sys.stdout.buffer.write(r.randbytes(1 << 20)); sys.stdout.flush(); time.sleep(0.25)\n";
    std::fs::write(root.join("slow.py"), script).unwrap();
    let config = root.join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            r#"
ledger = "{ledger}"

[repositories.primary]
url = "repo"
password_file = "pass"

[datasets.slow]
kind = "command"
command = ["python3", "{slow}"]
schedule = "daily at 01:00"

[datasets.quick]
kind = "command"
command = ["echo", "a small dataset"]
schedule = "daily at 01:30"

[daemon]
max_jitter = "0"
jobs_per_repository = 2
"#,
            ledger = server.dsn("ledger"),
            slow = root.join("slow.py").display()
        ),
    )
    .unwrap();
    let mut nodes = vec![start_node(&config, "n1", true)];
    nodes.push(start_node(&config, "n2", false));
    nodes.push(start_node(&config, "n3", false));
    let token = std::fs::read_to_string(root.join("bulwark-api.token"))
        .unwrap()
        .trim()
        .to_string();

    // Whoever holds the slow backup's lease dies mid-backup.
    let holder = |s: &PgServer| -> Option<(String, i64)> {
        let row = s.psql(
            "ledger",
            "SELECT holder || ' ' || fencing FROM bulwark_leases WHERE key = 'dataset:slow' AND expires > now()",
        );
        row.split_once(' ')
            .map(|(h, f)| (h.to_string(), f.parse().unwrap()))
    };
    let mut first = None;
    wait_for(
        Duration::from_secs(60),
        "a node to take the slow backup",
        || {
            first = holder(&server);
            first.is_some() && !files_below(&root.join("repo/data")).is_empty()
        },
    );
    let (victim, fencing) = first.unwrap();
    let at = nodes.iter().position(|n| n.name == victim).unwrap();
    let mut dead = nodes.remove(at);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    std::mem::forget(dead);
    // Another node takes the job over once the lease expires, and finishes the slot.
    let took = wait_for(Duration::from_secs(30), "another node to take over", || {
        holder(&server).is_some_and(|(h, f)| h != victim && f > fencing)
    });
    eprintln!("taken over {took:?} after the kill");
    wait_for(
        Duration::from_secs(120),
        "the slow backup to finish",
        || !ok_backups(&config, "slow").is_empty(),
    );
    let snapshots = || {
        let mut c = bulwark();
        c.args(["snapshots", "--json", "-r"])
            .arg(root.join("repo"))
            .env("BULWARK_PASSWORD_FILE", root.join("pass"));
        run(&mut c).json()
    };
    // The quick backup may also have been the victim's: when the kill lands between its
    // snapshot and its ledger event, the node taking the slot over finds the snapshot, does not
    // back up again, and records the snapshot it found. Either way the ledger gets one event.
    wait_for(Duration::from_secs(60), "the quick backup", || {
        !ok_backups(&config, "quick").is_empty()
    });
    // No slot ran twice: one good backup and one snapshot per dataset.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ok_backups(&config, "slow").len(), 1);
    assert_eq!(ok_backups(&config, "quick").len(), 1);
    let snaps = snapshots();
    for d in ["slow", "quick"] {
        assert_eq!(
            snaps
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["dataset"] == d)
                .count(),
            1,
            "{d}: {snaps}"
        );
    }
    let winner = ok_backups(&config, "slow")[0].clone();
    let run_of_winner = events(&config)
        .into_iter()
        .find(|e| e["kind"] == "run" && e["seq"].as_u64() > winner["seq"].as_u64())
        .unwrap();
    assert!(
        run_of_winner["details"]["context"]["lease"]["fencing"]
            .as_i64()
            .unwrap()
            > fencing,
        "the finishing run carries the newer fencing token: {run_of_winner}"
    );

    // The database restarts under the nodes; a run asked for afterwards completes.
    let before = events(&config).len();
    server.restart();
    let port = nodes[0].port;
    let started = Instant::now();
    let mut status = 0;
    while started.elapsed() < Duration::from_secs(30) {
        status = post(port, "/api/datasets/quick/run", &token);
        if status == 202 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(status, 202, "the API takes a run after the restart");
    wait_for(Duration::from_secs(60), "the run after the restart", || {
        ok_backups(&config, "quick").len() == 2
    });
    for n in &mut nodes {
        assert!(n.child.try_wait().unwrap().is_none(), "{} is alive", n.name);
    }
    let after = events(&config);
    assert!(after.len() > before);
    let nodes_seen: std::collections::BTreeSet<String> = after
        .iter()
        .filter(|e| e["kind"] == "daemon" && e["details"]["action"] == "started")
        .map(|e| e["details"]["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes_seen.len(), 3, "{nodes_seen:?}");
    let mut c = bulwark();
    c.args(["ledger", "verify", "--json", "-c"]).arg(&config);
    let out = run(&mut c);
    out.assert_ok();
    assert_eq!(out.json()["problems"], serde_json::json!([]));
}
