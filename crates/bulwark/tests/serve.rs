//! `bulwark serve` as a process: it runs what is due on its own, SIGHUP with a broken policy file
//! keeps the old one in force (and says where the new one is wrong), a fixed file is taken up,
//! and SIGTERM during a backup stops it at a safe point, exits 0, and the next run reuses what
//! the stopped backup had stored.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

struct Served {
    child: Child,
    port: u16,
    token: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    fn start(config: &Path, extra: &[&str]) -> Served {
        let mut c = bulwark();
        c.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--poll-seconds",
            "1",
            "-c",
        ])
        .arg(config)
        .args(extra)
        .env("BULWARK_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
        let mut child = c.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("dashboard at http://127.0.0.1:").nth(1) {
                    let port: u16 = rest.split('/').next().unwrap().parse().unwrap();
                    let _ = tx.send(port);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("serve did not start: {:?}", log.lock().unwrap()));
        let token_file = config.parent().unwrap().join("bulwark-api.token");
        let token = std::fs::read_to_string(token_file)
            .unwrap()
            .trim()
            .to_string();
        Served {
            child,
            port,
            token,
            log,
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.token
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, dechunk(&body))
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// The JSON of `path` once the daemon has a view (503 before).
    fn ready_json(&self, path: &str) -> Option<Value> {
        let (status, body) = self.get(path);
        (status == 200).then(|| serde_json::from_str(&body).unwrap())
    }

    /// Wait until `f` holds, at most `limit`.
    fn until(&self, limit: Duration, what: &str, mut f: impl FnMut(&Served) -> bool) {
        let start = Instant::now();
        while !f(self) {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory effects; the pid is our child's.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    fn wait(mut self, limit: Duration) -> (i32, Vec<String>) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                let log = self.log.lock().unwrap().clone();
                return (exit_code(status), log);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "serve did not stop within {limit:?}; log:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HTTP/1.1 chunked bodies, as axum sends them.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return body.to_string();
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_string();
        };
        if n == 0 {
            return out;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
}

/// The embedded default in a fresh directory, with `extra` appended.
fn site(extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir("bulwark-serve-");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(examples.join("sample"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::copy(
        examples.join("demo.passphrase"),
        dir.path().join("demo.passphrase"),
    )
    .unwrap();
    let text = std::fs::read_to_string(examples.join("bulwark.toml"))
        .unwrap()
        .replace("../target/demo/", "state/");
    let config = dir.path().join("bulwark.toml");
    std::fs::write(&config, format!("{text}\n{extra}")).unwrap();
    (dir, config)
}

fn ledger_events(config: &Path) -> Vec<Value> {
    let mut c = bulwark();
    c.args(["ledger", "events", "--json", "-c"]).arg(config);
    let out = run(&mut c);
    out.assert_ok();
    out.json().as_array().unwrap().clone()
}

#[test]
fn the_daemon_runs_what_is_due_and_a_broken_reload_keeps_the_old_file() {
    let (_dir, config) = site("[daemon]\nmax_jitter = \"0\"\n");
    let served = Served::start(&config, &["--init"]);
    // Both datasets become met without anyone running anything.
    served.until(Duration::from_secs(90), "every dataset met", |s| {
        s.ready_json("/api/status").is_some_and(|st| {
            st["datasets"]
                .as_object()
                .unwrap()
                .values()
                .all(|d| d["verdict"] == "met")
        })
    });
    let good = std::fs::read_to_string(&config).unwrap();
    // The ledger is read through a good copy of the file while the served one is broken.
    let copy = config.with_file_name("good.toml");
    std::fs::write(&copy, &good).unwrap();
    std::fs::write(
        &config,
        format!("{good}\n[datasets.broken]\nkind = \"banana\"\n"),
    )
    .unwrap();
    served.signal(libc::SIGHUP);
    served.until(Duration::from_secs(20), "the refusal", |s| {
        s.get("/metrics")
            .1
            .contains("bulwark_config_reload_failures_total 1")
            || s.get("/metrics")
                .1
                .contains("bulwark_config_reload_failures_total 2")
    });
    let log = served.log.lock().unwrap().join("\n");
    assert!(
        log.contains("bulwark.toml:") && log.contains("previous one stays in force"),
        "the refusal names the place in the file: {log}"
    );
    let names = served.json("/api/datasets");
    assert_eq!(names, serde_json::json!(["app-db", "docs"]));
    assert!(
        ledger_events(&copy)
            .iter()
            .any(|e| e["kind"] == "daemon" && e["details"]["action"] == "refused_policy")
    );
    // A good change is taken up (the file is watched; SIGHUP makes it immediate).
    std::fs::write(
        &config,
        format!("{good}\n[datasets.more]\nkind = \"files\"\npaths = [\"sample/files\"]\nschedule = \"daily at 05:00\"\n"),
    )
    .unwrap();
    served.signal(libc::SIGHUP);
    served.until(Duration::from_secs(30), "the new dataset", |s| {
        s.json("/api/datasets")
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "more")
    });
    served.signal(libc::SIGTERM);
    let (code, _) = served.wait(Duration::from_secs(60));
    assert_eq!(code, 0);
    let events = ledger_events(&config);
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "daemon")
        .map(|e| e["details"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"started"));
    assert_eq!(actions.last(), Some(&"stopped"));
}

#[test]
fn sigterm_stops_a_backup_at_a_safe_point_and_the_next_run_reuses_its_packs() {
    let dir = tempdir("bulwark-sigterm-");
    std::fs::write(dir.path().join("pass"), "a passphrase for the stream test").unwrap();
    // 64 MiB of deterministic incompressible data, a MiB every 50 ms: the backup takes seconds.
    let script = "import random, sys, time\nr = random.Random(7)\nfor _ in range(64):\n    sys.stdout.buffer.write(r.randbytes(1 << 20)); sys.stdout.flush(); time.sleep(0.05)\n";
    std::fs::write(dir.path().join("stream.py"), script).unwrap();
    let config = dir.path().join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[repositories.primary]
url = "repo"
password_file = "pass"

[datasets.stream]
kind = "command"
command = ["python3", "{}"]
schedule = "daily at 01:00"

[daemon]
max_jitter = "0"
"#,
            dir.path().join("stream.py").display()
        ),
    )
    .unwrap();
    let served = Served::start(&config, &["--init", "--stop-grace-seconds", "0"]);
    let packs = || files_below(&dir.path().join("repo/data")).len();
    served.until(Duration::from_secs(60), "the first pack", |_| packs() >= 1);
    served.signal(libc::SIGTERM);
    let (code, log) = served.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{}", log.join("\n"));
    let stored_before: Vec<PathBuf> = files_below(&dir.path().join("repo/data"));
    assert!(!stored_before.is_empty());
    let events = ledger_events(&config);
    let backup = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "backup")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(backup["ok"], false, "{backup}");
    assert!(
        backup["summary"].as_str().unwrap().contains("interrupted"),
        "{backup}"
    );
    let mut c = bulwark();
    c.args(["snapshots", "--json", "-r"])
        .arg(dir.path().join("repo"))
        .env("BULWARK_PASSWORD_FILE", dir.path().join("pass"));
    let snaps = run(&mut c).json();
    assert!(
        snaps
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["dataset"] != "stream"),
        "no partial snapshot: {snaps}"
    );
    // The next run finishes, storing only what the stopped one had not.
    let mut c = bulwark();
    c.args(["run", "stream", "--json", "-c"]).arg(&config);
    let out = run(&mut c);
    out.assert_ok();
    let report = out.json();
    let summary = report["datasets"][0]["steps"][0]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(summary.starts_with("snapshot"), "{report}");
    let added: u64 = ledger_events(&config)
        .iter()
        .rev()
        .find(|e| e["kind"] == "backup" && e["ok"] == true)
        .map(|e| {
            e["details"]["summary"]["bytes_added_stored"]
                .as_u64()
                .unwrap()
        })
        .unwrap();
    assert!(
        added < 60 << 20,
        "the packs of the stopped backup were reused: {added} bytes added"
    );
    for p in stored_before {
        assert!(p.exists(), "{} was kept", p.display());
    }
}

#[test]
fn tls_from_certificate_files_and_no_token_no_data() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("openssl is not installed: skipping the TLS test");
        return;
    }
    let (dir, config) = site("[daemon]\nmax_jitter = \"0\"\n");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = bulwark();
    c.args(["serve", "--init", "--listen", "127.0.0.1:0", "-c"])
        .arg(&config)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    // Keep reading after the address: a closed pipe would make the daemon's next log line fail.
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("dashboard at ").nth(1) {
                let _ = tx.send(rest.split(' ').next().unwrap().to_string());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("serve did not start: {:?}", log.lock().unwrap()));
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let token = std::fs::read_to_string(dir.path().join("bulwark-api.token"))
        .unwrap()
        .trim()
        .to_string();
    // Loopback only: a proxy from the environment must not carry the request elsewhere.
    let curl_out = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--cacert"])
            .arg(&cert)
            .args(args)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let curl = |args: &[&str]| {
        let (stdout, stderr) = curl_out(args);
        assert!(
            stderr.trim().is_empty(),
            "curl {args:?}: {stderr}; serve said {:?}",
            log.lock().unwrap()
        );
        stdout
    };
    assert_eq!(curl(&[&format!("{url}healthz")]), "ok\n");
    let refused = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{url}api/jobs"),
    ]);
    assert_eq!(refused, "401");
    let jobs = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{url}api/jobs"),
    ]);
    assert!(jobs.contains("\"running\""), "{jobs}");
    // Plain HTTP on the TLS port gets nothing.
    let (plain, _) = curl_out(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url.replace("https", "http"),
    ]);
    assert_ne!(plain, "200");
    // SAFETY: kill has no memory effects; the pid is our child's.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(exit_code(status), 0);
}
